"""The base of the constraints that own variables (pruning masks, clusters)."""

import keras
from keras.src.saving.keras_saveable import KerasSaveable


class StatefulConstraint(keras.constraints.Constraint, KerasSaveable):
    """A weight constraint whose state (masks, centroids) Keras saves.

    The state lives in non-trainable variables the constraint creates with
    `new_variable`; the subclass writes and reads them in
    `save_own_variables` / `load_own_variables`, so `.keras` files,
    `save_weights` and `BackupAndRestore` keep them.
    """

    def _obj_type(self):
        # Keras's saver only knows a fixed list of object types (it uses the
        # type to skip attributes while walking); "Feature", a plain object
        # of keras.utils.FeatureSpace, skips none of ours.
        return "Feature"

    def __reduce__(self):
        # KerasSaveable pickles whole models; a constraint pickles its config.
        return (type(self).from_config, (self.get_config(),))

    @staticmethod
    def new_variable(name, value, dtype):
        """A non-trainable variable for the constraint's state."""
        return keras.Variable(
            value,
            dtype=dtype,
            trainable=False,
            name=name,
            # Every replica computes the same state from the same weights;
            # on-read variables update their local copy without a
            # cross-replica sync (which TensorFlow forbids inside a cond).
            synchronization="on_read",
            aggregation="only_first_replica",
        )
