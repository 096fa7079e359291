# The core's events to typed events (events.pyx); it has no declarations of its own to
# share: the .pxd exists so every .pyx has one.
