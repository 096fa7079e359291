"""The recorder: one engine's sequenced events into PostgreSQL, Redis and Kafka, each
sink exactly once per sequence number (see README.md in this folder).

`service.Recorder` is the process; `postgres_sink`, `redis_sink` and `kafka_sink` the
sinks; `sink.SinkRunner` the loop that feeds one sink and rides out its outages.
"""
