"""journeybus connectors: sources that publish to the bus, sinks that read from it."""
