"""The HTTP listener (with its connection limits), its routes and the web-config enforcement.
I/O: the network (listening sockets, requests and responses) and reading the web config file."""
