"""Evaluate runs on action recognition: ``python evaluate.py --dataset demo``.

The command line is dynamonet_tf/cli/evaluate.py,
installed as ``dynamonet-evaluate``; ``--help`` lists its options.
"""

from dynamonet_tf.cli.evaluate import main

if __name__ == "__main__":
    main()
