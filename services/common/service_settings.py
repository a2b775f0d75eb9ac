"""Imports every service's settings module so that each settings class is registered."""

import services.gateway.settings  # noqa: F401
import services.ingestor.backfill.settings  # noqa: F401
import services.ingestor.journal  # noqa: F401
import services.ingestor.settings  # noqa: F401
import services.processor.settings  # noqa: F401
import services.reference.settings  # noqa: F401
import services.scenario.settings  # noqa: F401
import services.supervisor_settings  # noqa: F401
