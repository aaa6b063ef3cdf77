"""The journeybus schema catalogue (data only): Avro schemas, topic files, examples.

Layout:
  avro/<schema name>/<revision>.avsc   every published revision, never edited
  topics/<topic>.yaml                  owner, key, partitions, producers, consumers, pii
  examples/<topic>/*.json              example values, validated by the tests
  catalog.json                         schema ids for the embedded default
"""

from pathlib import Path

SCHEMAS_DIR = Path(__file__).resolve().parent
