"""Next-frame prediction against copying the last frame (paper Table 3).

The command line is dynamonet_tf/cli/evaluate_frame_prediction.py,
installed as ``dynamonet-evaluate-frame-prediction``; ``--help`` lists its options.
"""

from dynamonet_tf.cli.evaluate_frame_prediction import main

if __name__ == "__main__":
    main()
