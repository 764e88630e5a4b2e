"""Adam with TensorFlow's fused update kernel: one op per variable instead of about a dozen.

Keras 3's `keras.optimizers.Adam` writes its update as separate ops per variable (power, sqrt,
subtract, multiply, three assignments...). On a 2-core CPU, where a VAE/IWAE step runs ~300 small
ops, the executor's per-op cost is a large share of the step. `Adam` here computes the same update
with one `ResourceApplyAdam` kernel per variable (Kingma & Ba 2015, https://arxiv.org/abs/1412.6980,
algorithm 1 with the bias corrections folded into the step size, as Keras does):

    m <- m + (g - m) (1 - beta_1)
    v <- v + (g^2 - v) (1 - beta_2)
    w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

It is a `keras.optimizers.Adam` (same arguments, config and variables, so checkpoints and `.keras`
files interchange); AMSGrad, and updates under a `tf.distribute` strategy, take Keras's own path.

Example:
    >>> import keras, tfaae
    >>> w = keras.Variable([1.0, 2.0])
    >>> optimizer = tfaae.optimizers.Adam(0.1)
    >>> optimizer.apply([keras.ops.convert_to_tensor([1.0, -1.0])], [w])
    >>> [round(float(v), 3) for v in w.numpy()]
    [0.9, 2.1]
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfaae")
class Adam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose per-variable update is one fused TensorFlow kernel.

    Args: those of `keras.optimizers.Adam`.
    """

    def update_step(self, gradient, variable, learning_rate):
        """Updates `variable` (and its moments) with one `ResourceApplyAdam` op."""
        if self.amsgrad or tf.distribute.has_strategy() or not hasattr(variable, "handle"):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle,
            v=self._velocities[index].handle, beta1_power=beta_1 ** step,
            beta2_power=beta_2 ** step, lr=tf.cast(learning_rate, dtype), beta1=beta_1,
            beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))
