"""Captures (pcap, pcapng; compressed) to the columnar packet table every darknet part reads."""
