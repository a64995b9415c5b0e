"""What a network's OCC and CMA hold, read from numbers: OCC's health figures (health), the l_o
lock read from logs (occ_lock), structure measures against their chance levels (structure, taken
on a network by measure) and the sentences chosen from numbers (sentences). Import each module
by name.
"""
