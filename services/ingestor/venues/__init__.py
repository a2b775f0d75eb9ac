"""Exchange adapters: one module per venue, each with its adapter class (a :class:`base.Venue` once
built with the venue's instrument table, which the caller hands in).

``services.ingestor.venues.registry`` maps venue ids to adapter classes; see ``base`` for the contract.
"""
