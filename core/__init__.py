"""Infrastructure without models: database plumbing, caches, formatting and JSON, shared admin pieces.

Nothing here knows about accounts, money rules or the API; the domain apps build on it.
"""
