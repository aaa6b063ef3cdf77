#!/usr/bin/env bash
# kcat with the librdkafka of the confluent-kafka wheel: Debian's kcat 1.7.1 links
# librdkafka 2.0.2, whose ApiVersion request fails against the embedded broker
# ("Read underflow"). Usage, from the repository root (arguments go to kcat):
#   examples/subscribers/kcat.sh -b 127.0.0.1:PORT -C -t cust.touchpoints.v1 -e -f '%t %p %o %k %S\n'
# Values are Confluent-framed Avro: Debian's kcat has no Avro support (-s value=avro
# needs a kcat built with libserdes); decode with confluent_consumer.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
wheel_lib=$(ls "$root"/.venv/lib/python3*/site-packages/confluent_kafka.libs/librdkafka-*.so.1 | head -n1)
lib="$(mktemp -d)"
trap 'rm -rf "$lib"' EXIT
ln -s "$wheel_lib" "$lib/librdkafka.so.1"
LD_LIBRARY_PATH="$lib" kcat "$@"
