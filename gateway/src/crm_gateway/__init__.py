"""The HTTP/JSON gateway of the CRM platform: channel applications' one door to the services.

It verifies the end user's JWT, checks the route's roles, forwards the same token to the
services over gRPC and translates their answers to JSON and their errors to RFC 9457
problems. It owns no customer data: nothing is stored, cached or logged here.
"""
