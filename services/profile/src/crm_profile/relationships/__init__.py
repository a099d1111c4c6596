"""Households and related parties: links between customers, each stored with its mirror."""
