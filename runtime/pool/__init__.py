"""A peer pool on Ray Serve: stateless ZeroMQ front ends hand requests to replicas running the bundle.

Server side only (``pip install 'edgesplit[pool]'``); nothing on a board imports this package.
"""
