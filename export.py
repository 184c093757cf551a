"""Export a run as a SavedModel: ``python export.py --model-dir runs/joint --out DIR``.

The command line is dynamonet_tf/cli/export.py,
installed as ``dynamonet-export``; ``--help`` lists its options.
"""

from dynamonet_tf.cli.export import main

if __name__ == "__main__":
    main()
