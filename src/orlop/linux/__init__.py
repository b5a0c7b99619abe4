"""Thin, typed bindings to the kernel (stdlib + ctypes only)."""
