"""`model.fit` callbacks that compress a model while it trains."""

from keras_compress.callbacks.lottery_ticket import LotteryTicket
from keras_compress.callbacks.magnitude_pruning import MagnitudePruning
from keras_compress.callbacks.network_slimming import NetworkSlimming
from keras_compress.callbacks.qat_schedule import QATSchedule
from keras_compress.callbacks.weight_clustering import WeightClustering

__all__ = ["LotteryTicket", "MagnitudePruning", "NetworkSlimming", "QATSchedule",
           "WeightClustering"]
