"""Prepare videos as TFRecords: ``python data/prepare.py demo --out prepared/demo``.

The command line is dynamonet_tf/cli/prepare.py,
installed as ``dynamonet-prepare``; ``--help`` lists its options.
"""

from dynamonet_tf.cli.prepare import main

if __name__ == "__main__":
    main()
