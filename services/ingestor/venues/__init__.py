"""Exchange adapters: one module per venue, each exporting ``VENUE`` (a :class:`base.Venue`).

``services.ingestor.venues.registry`` maps venue ids to adapters; see ``base`` for the contract.
"""
