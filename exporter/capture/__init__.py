"""`generatorlabs-exporter capture`: one anonymised page of each endpoint the exporter reads, in
one JSON file a user can attach to a bug report and tests/ can replay. Holds no code and no I/O.

    anonymise  pure: ids hashed, addresses and names replaced, structure and types kept
    replay     pure: the file format, and each response run through the exporter's own parsers
    run        I/O: the requests (budget, ledger, RateLimit headers), the demo, the file
"""
