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

    def load_state(self, key, value, what):
        """Sets the state variable `key` to the saved `value`.

        The variable is created on first load (a constraint read from a
        config has none yet); an existing one must have the saved shape.

        Args:
            key: The attribute holding the variable (e.g. "mask").
            value: The saved NumPy array.
            what: The state's family, for the variable name and the message
                (e.g. "pruning" or "cluster").
        """
        current = getattr(self, key)
        if current is None:
            setattr(self, key, self.new_variable(f"{what}_{key}", value, value.dtype))
        elif tuple(current.shape) != tuple(value.shape):
            raise ValueError(
                f"Expected a saved {what} {key} of shape "
                f"{tuple(current.shape)}. Received: shape {value.shape}"
            )
        else:
            current.assign(value)
