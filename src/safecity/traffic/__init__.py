"""Adaptive traffic signals measured in SUMO (issue 7).

``scenarios`` locates the RESCO benchmark networks, ``network`` reads a net's signals and
writes the detectors, ``sim`` runs one episode per process through libsumo, ``controllers``
decide phases from detector readings only, ``metrics`` scores an episode from its tripinfo
and ``bench`` runs scenario x controller x seed in parallel processes.
"""
