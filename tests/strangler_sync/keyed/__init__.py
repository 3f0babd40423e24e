"""A small app with UUID- and str-keyed models: an owner and a follower copy of each (test_keys.py)."""
