"""Dispatch: non-police issues go to the city department responsible as work orders
(routing table, work-order workflow, replies), Open311 GeoReport v2, public notices."""
