"""CALI domain code shared by the Lambda handlers, the operator CLI and the local pipeline.

Modules hold plain, testable logic; AWS and other I/O sit behind small Protocol
interfaces next to the code that uses them, so that local, test and AWS implementations
swap by configuration.
"""
