"""The layers every ResNet is made of, written once: stem, residual block, head.

One `Blocks` object holds the options that shape every block (block type, version, shortcut option,
plain or residual, biases, batch-norm settings, weight decay) and the Keras module to build with
(keras, or tf_keras for quantization-aware training). Layer names are stable and hierarchical
(`stem_conv`, `stage2_block1_conv2`, `stage2_block1_shortcut_conv`, `predictions`): weight import,
QAT and debugging rely on them.
"""

import dataclasses

from keras_resnet.nets.layers import batch_normalization_layer, channel_zero_pad_layer


@dataclasses.dataclass(frozen=True)
class BlockOptions:
    block: str  # "basic" (two 3x3) or "bottleneck" (1x1-3x3-1x1, 4x expansion)
    version: str  # "v1", "v1.5" (post-activation) or "v2" (pre-activation)
    shortcut: str  # paper option "A", "B" or "C"
    plain: bool  # True: no shortcuts at all, the paper's plain counterpart
    conv_bias: bool
    bn_epsilon: float
    bn_momentum: float
    sync_batch_norm: bool
    zero_init_residual: bool
    weight_decay: float
    # Strided 1x1 convolutions as a parameter-free subsampling layer, then the convolution at stride
    # 1: the same function and weights. Conversion builds this way: LiteRT's GPU accelerator
    # (ai-edge-litert 2.3.0) computes int8 1x1 convolutions with stride 2 wrongly.
    subsampled_pointwise: bool = False

    @property
    def pre_activation(self):
        return self.version == "v2"


class Blocks:
    def __init__(self, keras_module, options):
        self.keras = keras_module
        self.layers = keras_module.layers
        self.options = options
        # Keras' L2 adds decay * sum(w^2) to the loss, whose gradient is 2 * decay * w; SGD weight
        # decay as in the paper adds decay * w, so the coefficient is halved (as the Model Garden does).
        self.regularizer = (
            keras_module.regularizers.L2(options.weight_decay / 2) if options.weight_decay else None
        )

    # -- single layers -------------------------------------------------------------------------

    def conv(self, x, filters, kernel_size, *, stride=1, name, followed_by_bn=True, zero_init=False):
        """A convolution, He-normal initialized, with the blocks' weight decay.

        Strided convolutions pad symmetrically (explicit zeros, then 'valid'): TensorFlow's 'same'
        pads only at the bottom/right for even inputs, which misaligns the residual and shortcut
        branches and breaks weights trained in other frameworks. With `subsampled_pointwise`, a
        strided 1x1 convolution is built as a 1x1 max-pool with that stride, then the convolution.

        Args:
            x: The input tensor (NHWC).
            filters: The number of output channels.
            kernel_size: The kernel's height and width (an int: kernels are square).
            stride: The stride, in both directions.
            name: The convolution layer's name (its padding and subsampling layers get suffixes).
            followed_by_bn: Whether a batch norm follows: in v2 (pre-activation) only a convolution
                not followed by one gets a bias, when `conv_bias` is set.
            zero_init: Initialize the kernel with zeros (zero_init_residual in pre-activation nets).

        Returns:
            The convolution's output tensor.
        """
        padding = "same"
        if stride > 1 and kernel_size > 1:
            x = self.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
            padding = "valid"
        if stride > 1 and kernel_size == 1 and self.options.subsampled_pointwise:
            # A 1x1 max-pool with stride s keeps the pixels a strided 1x1 convolution reads.
            x = self.layers.MaxPooling2D(1, strides=stride, name=f"{name}_subsample")(x)
            stride = 1
        # keras.applications' weight files carry a bias on every convolution of v1, and on the
        # convolutions not followed by batch norm in v2 (where the bias is not cancelled out).
        use_bias = self.options.conv_bias and (not self.options.pre_activation or not followed_by_bn)
        return self.layers.Conv2D(
            filters,
            kernel_size,
            strides=stride,
            padding=padding,
            use_bias=use_bias,
            kernel_initializer="zeros" if zero_init else "he_normal",
            kernel_regularizer=self.regularizer,
            name=name,
        )(x)

    def batch_norm(self, x, *, name, zero_init=False):
        """A batch normalization with the blocks' epsilon, momentum and synchronization.

        Args:
            x: The input tensor.
            name: The layer's name.
            zero_init: Initialize gamma with zeros instead of ones (zero_init_residual).

        Returns:
            The layer's output tensor.
        """
        return batch_normalization_layer(self.keras)(
            epsilon=self.options.bn_epsilon,
            momentum=self.options.bn_momentum,
            gamma_initializer="zeros" if zero_init else "ones",
            synchronized=self.options.sync_batch_norm,
            name=name,
        )(x)

    def relu(self, x, *, name):
        return self.layers.Activation("relu", name=name)(x)

    # -- stem --------------------------------------------------------------------------------

    def stem(self, x, *, kind, width):
        """The stem. ImageNet: 7x7/2 conv and 3x3/2 max-pool. CIFAR: one 3x3 conv (paper, Sec. 4.2).

        In v2 the first block pre-activates the stem's output, so the stem ends at its convolution.

        Args:
            x: The input tensor, the (normalized) images.
            kind: The family's stem, "imagenet"; any other value builds the CIFAR stem.
            width: The number of channels of the stem's convolution.

        Returns:
            The stem's output tensor.
        """
        pre_activation = self.options.pre_activation
        if kind == "imagenet":
            x = self.conv(x, width, 7, stride=2, name="stem_conv", followed_by_bn=not pre_activation)
        else:
            x = self.conv(x, width, 3, name="stem_conv", followed_by_bn=not pre_activation)
        if not pre_activation:
            x = self.batch_norm(x, name="stem_bn")
            x = self.relu(x, name="stem_relu")
        if kind == "imagenet":
            # Zero padding equals -inf padding after a ReLU; in v2 it is what keras.applications does.
            x = self.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
            x = self.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
        return x

    # -- residual block ----------------------------------------------------------------------

    def block(self, x, *, width, out_channels, stride, name):
        """One residual block (or, with plain=True, the same layers without the shortcut).

        v1 and v1.5 are post-activation (paper, Fig. 2/5): conv-BN-ReLU ..., conv-BN, add, ReLU.
        v1 puts a bottleneck's stride on its first 1x1 conv (paper, keras.applications); v1.5 on
        the 3x3 (torchvision, Model Garden), which keeps more information and costs more compute.
        v2 is pre-activation (He et al., 2016b): BN-ReLU, conv, ..., conv, add.

        Args:
            x: The block's input tensor.
            width: The channels of the inner convolutions: a basic block's first 3x3, a bottleneck's
                first 1x1 and its 3x3.
            out_channels: The channels of the block's output (its last convolution and its shortcut).
            stride: The block's stride (1, or 2 where it downsamples).
            name: The prefix of its layers' names, e.g. "stage2_block1".

        Returns:
            The block's output tensor.
        """
        options = self.options
        if options.pre_activation:
            branch_input = self.batch_norm(x, name=f"{name}_preact_bn")
            branch_input = self.relu(branch_input, name=f"{name}_preact_relu")
        else:
            branch_input = x
        shortcut = None
        if not options.plain:
            shortcut = self.shortcut(
                x, branch_input, out_channels=out_channels, stride=stride, name=f"{name}_shortcut"
            )

        if options.block == "basic":
            convs = [(width, 3, stride), (out_channels, 3, 1)]
        else:
            stride_1x1, stride_3x3 = (stride, 1) if options.version == "v1" else (1, stride)
            convs = [(width, 1, stride_1x1), (width, 3, stride_3x3), (out_channels, 1, 1)]

        y = branch_input
        for index, (filters, kernel_size, conv_stride) in enumerate(convs, start=1):
            last = index == len(convs)
            # zero_init_residual (Goyal et al., 2017): each residual branch starts as zero, so the
            # block starts as the identity. Post-activation nets zero the last BN's gamma,
            # pre-activation nets (no BN there) the last conv's kernel.
            y = self.conv(
                y,
                filters,
                kernel_size,
                stride=conv_stride,
                name=f"{name}_conv{index}",
                followed_by_bn=not (last and options.pre_activation),
                zero_init=last and options.pre_activation and options.zero_init_residual,
            )
            if last and options.pre_activation:
                break
            y = self.batch_norm(y, name=f"{name}_bn{index}", zero_init=last and options.zero_init_residual)
            if not last:
                y = self.relu(y, name=f"{name}_relu{index}")

        if shortcut is not None:
            y = self.layers.Add(name=f"{name}_add")([shortcut, y])
        if not options.pre_activation:
            y = self.relu(y, name=f"{name}_out")
        return y

    def shortcut(self, x, pre_activated, *, out_channels, stride, name):
        """The paper's options (Sec. 3.3): A — identity, subsampled and zero-padded to the new width
        where dimensions grow, no parameters; B — projection (1x1 conv + BN) where the width changes,
        identity elsewhere; C — projection on every block. A resolution change at unchanged width
        (keras.applications' v2 layout) takes the subsampled identity under A and B.

        Args:
            x: The block's input tensor.
            pre_activated: The block's input after its pre-activation (BN-ReLU): what a v2
                projection reads; the same as `x` in v1 and v1.5.
            out_channels: The channels of the block's output.
            stride: The block's stride.
            name: The prefix of the shortcut's layers' names, e.g. "stage2_block1_shortcut".

        Returns:
            The shortcut's output tensor, of `out_channels` channels at the block's output resolution.
        """
        options = self.options
        in_channels = x.shape[-1]
        if options.shortcut == "C" or (options.shortcut == "B" and in_channels != out_channels):
            # In v2 the projection reads the pre-activated input (He et al., 2016b; keras.applications).
            source = pre_activated if options.pre_activation else x
            y = self.conv(
                source,
                out_channels,
                1,
                stride=stride,
                name=f"{name}_conv",
                followed_by_bn=not options.pre_activation,
            )
            if not options.pre_activation:
                y = self.batch_norm(y, name=f"{name}_bn")
            return y
        if stride > 1:
            # A 1x1 max-pool with stride s keeps every s-th pixel: parameter-free subsampling.
            x = self.layers.MaxPooling2D(1, strides=stride, name=f"{name}_subsample")(x)
        if out_channels > in_channels:
            x = channel_zero_pad_layer(self.keras)(out_channels - in_channels, name=f"{name}_pad")(x)
        return x

    # -- head --------------------------------------------------------------------------------

    def head(self, x, *, include_top, pooling, classes, classifier_activation):
        """The end of the network: in v2 a final BN-ReLU, then the pooling and the classifier asked for.

        Args:
            x: The last block's output tensor.
            include_top: End with global average pooling and a `classes`-way Dense classifier
                (float32 even under a mixed-precision policy).
            pooling: Without the top: None (the feature map), "avg" or "max" (global pooling).
            classes: The number of classes of the classifier.
            classifier_activation: The classifier's activation ("softmax", or None for logits).

        Returns:
            The model's output tensor.
        """
        if self.options.pre_activation:
            # Pre-activation blocks end on a convolution: normalize and activate once at the end.
            x = self.batch_norm(x, name="post_bn")
            x = self.relu(x, name="post_relu")
        if include_top or pooling == "avg":
            x = self.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        elif pooling == "max":
            x = self.layers.GlobalMaxPooling2D(name="max_pool")(x)
        if include_top:
            # float32 even under a mixed-precision policy: logits and softmax stay numerically safe.
            x = self.layers.Dense(
                classes,
                activation=classifier_activation,
                kernel_regularizer=self.regularizer,
                dtype="float32",
                name="predictions",
            )(x)
        return x
