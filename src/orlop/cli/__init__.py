"""The `orlop` command: Docker's command line, a thin client of orlopd's Engine API.

It starts on every invocation, so it stays lean: the standard library only, no `json`,
`re`, `enum`, `socket` or `signal` packages on the common path (their C modules
`_json`, `_socket`, `_signal` do the work), and every command's module imported only
when that command runs.
"""
