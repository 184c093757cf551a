"""Train DynamoNet: ``python train.py --stage pretrain`` (see README.md).

The command line is dynamonet_tf/cli/train.py,
installed as ``dynamonet-train``; ``--help`` lists its options.
"""

from dynamonet_tf.cli.train import main

if __name__ == "__main__":
    main()
