# journeybus: every target creates the virtual environment first, so that on a
# fresh machine `make demo` and `make test` need nothing installed by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install demo test test-fast lint format models clean broker bench bench-profile bench-e2e bench-guard bench-durability bench-faust bench-activation soak crash fuzz

help:
	@echo "make demo   - set up and run the whole pipeline on the embedded broker with demo data"
	@echo "make test   - set up and run the test suite (real broker, PostgreSQL, DuckDB)"
	@echo "make lint   - ruff, and the layers (one direction, no import cycles: tests/layers.py)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,reference]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/journeybus demo

test: $(STAMP)
	$(BIN)/pytest -q tests

test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/schemas

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m tests.layers

# the Faust models (streams/faust/models.py) from schemas/avro; a unit test fails when stale
models: $(STAMP)
	$(BIN)/python -m streams.faust.generate

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# 36 kills: 3 rounds of every component, the broker twice, its object store and the stack
crash: $(STAMP)
	JOURNEYBUS_CRASH_CUSTOMERS=3000 JOURNEYBUS_CRASH_KILLS=36 $(BIN)/pytest -q -s tests/crash

# The long fuzz run (make test runs the same properties with 300 examples each):
# 100,000 batches per stage (normalise's and the sink's shared by their input topics) and
# 100,000 inputs per decoder property, in 20 rounds of 5,000 with their own seeds (one
# run of 100,000 held every example hypothesis tried and ran out of 24 GB of memory);
# then 50,000 requests per collector property.
FUZZ_ROUNDS ?= 20
fuzz: $(STAMP)
	for round in $$(seq 1 $(FUZZ_ROUNDS)); do \
	  HYPOTHESIS_PROFILE=fuzz JOURNEYBUS_FUZZ_EXAMPLES=5000 $(BIN)/pytest -q -s -p no:logging \
	    --hypothesis-seed=$$round tests/fuzz/test_stages.py tests/fuzz/test_sink.py \
	    tests/fuzz/test_decoders.py || exit 1; \
	done
	HYPOTHESIS_PROFILE=fuzz JOURNEYBUS_FUZZ_EXAMPLES=50000 $(BIN)/pytest -q -s tests/fuzz/test_collector.py

bench: $(STAMP)
	$(BIN)/python -m bench.stages 4000
	$(BIN)/python -m bench.sink_throughput 300000

# end to end (collector to queryable row): max sustained, freshness at 5k and 1k events/s
bench-e2e: $(STAMP)
	$(BIN)/python -m bench.end_to_end --customers 4000 --rates 5000,1000

# what the durable log costs: the embedded broker in memory and durable, side by side
bench-durability: $(STAMP)
	$(BIN)/python -m bench.durability 100000
	$(BIN)/python -m bench.end_to_end --customers 2000 --rates 1000 --storage memory,durable

# 30 minutes of paced load through the whole stack; RSS of every process
soak: $(STAMP)
	$(BIN)/python -m bench.end_to_end --soak 30 --rate 1000 --customers 2000

# CI's quick guard: fails only on a large regression of normalise against the ceiling
bench-guard: $(STAMP)
	$(BIN)/python -m bench.guard 1500

# where the CPU goes: the per-event Faust agent against the batched stage runner (py-spy)
bench-profile: $(STAMP)
	$(BIN)/python -m bench.faust_profile 4000

# the Faust toolkit: codec and models per record, an example agent's throughput
bench-faust: $(STAMP)
	$(BIN)/python -m bench.faust_toolkit 20000

# activation: the product feed against the same-category baseline (held-out purchases),
# audience latency at 500 profile updates/s, suppression against the generated truth
bench-activation: $(STAMP)
	$(BIN)/python -m bench.activation_feed 3000
	$(BIN)/python -m bench.activation_latency 500 60
	$(BIN)/python -m bench.activation_suppression 3000

broker: $(STAMP)
	$(BIN)/journeybus broker

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .journeybus *.egg-info
