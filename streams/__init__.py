"""journeybus stream processing: codec, topics, broker, Faust agents, CLI."""
