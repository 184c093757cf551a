"""Recognise the actions in videos: ``python predict.py walk.mp4 --export DIR``.

The command line is dynamonet_tf/cli/predict.py,
installed as ``dynamonet-predict``; ``--help`` lists its options.
"""

from dynamonet_tf.cli.predict import main

if __name__ == "__main__":
    main()
