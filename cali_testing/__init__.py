"""Test doubles for CALI's stores and queues: in-memory, behaving like the real ones.

They live outside lambdas/ so that no Lambda asset ships them; tests, the consumer benchmark
and the local pipeline import them from here.
"""
