"""``python -m fsml.examples.parcels <feature repo>`` writes the example's tables."""

from fsml.examples.parcels.synthetic import main

main()
