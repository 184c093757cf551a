"""Video datasets: official split readers, TFRecord preparation, tf.data pipelines, demo data."""
