"""The local pipeline behind `make demo` and the end-to-end tests."""
