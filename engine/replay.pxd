# The LOBSTER known-window replay loop (../shared/contracts/lobster.md), compiled.
# It has no declarations of its own to share; the .pxd exists so every .pyx has one.
from tickplane.engine.book cimport Book
