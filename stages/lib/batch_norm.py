"""Batch normalization for the CNN: TensorFlow's fused kernel where TensorFlow runs, Keras' own
layer elsewhere. Import it after stages.lib.backend.use(): it imports Keras. Registered under the
same name whatever the backend, so a model trained on either loads on the other."""

import keras


@keras.saving.register_keras_serializable(package="mnist_dvc")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization, computed by TensorFlow's fused kernel on image batches when
    TensorFlow is the backend.

    Keras 3 builds batch normalization from separate element-wise ops, which on a CPU cost far
    more time than the fused kernel that Keras 2 used. Same weights and config; the moving
    variance follows the unbiased batch variance (Keras' the biased one). Other cases (masks, renormalization, statistics synchronized across replicas,
    the dense layers' 2-D batches) and other backends take Keras' own path, so a model saved on
    TensorFlow loads on JAX. Synchronized statistics are TensorFlow's alone: elsewhere the layer
    has one copy of them anyway.
    """

    def __init__(self, synchronized=False, **kwargs):
        super().__init__(synchronized=synchronized and keras.backend.backend() == "tensorflow",
                         **kwargs)

    def call(self, inputs, training=None, mask=None):
        if (keras.backend.backend() != "tensorflow" or mask is not None or self.renorm
                or self.synchronized or len(inputs.shape) != 4 or self.axis not in (-1, 3)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # the TensorFlow backend is running: it is loaded already

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones(channels)
        beta = self.beta if self.center else tf.zeros(channels)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1 - self.momentum)
            )
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False,
        )
        return outputs


def batch_normalization(options):
    """TensorFlow's fused kernel on TensorFlow; Keras' own layer on JAX, where the SPMD program of
    a data-parallel step computes statistics over the whole batch by itself."""
    if keras.backend.backend() == "tensorflow":
        return FusedBatchNormalization(**options)
    return keras.layers.BatchNormalization(**options)
