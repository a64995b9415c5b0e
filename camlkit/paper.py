"""The paper's LA numbers as data (Tables 1 and 2), to print beside our own results.

Each entry is the mean +- std over three seeds of the model of the final iteration, as printed
in the paper: Dice and Jaccard in %, 95HD and ASD in voxels. Method keys:

- ``"supervised"``: V-Net trained on the labeled cases only (Table 1; 80 = all labeled);
- ``"mcnet"``: MC-Net, the ablation's baseline (Table 1 and Table 2, first row of each block);
- ``"mcnet+occ"``, ``"mcnet+cma"``: the baseline with one of CAML's modules (Table 2);
- ``"caml"``: the full method (Table 1 "ours", Table 2 last row of each block).
"""

METHODS = ("supervised", "mcnet", "mcnet+occ", "mcnet+cma", "caml")
METRICS = ("dice", "jaccard", "hd95", "asd")
PERCENT = ("dice", "jaccard")  # the metrics the paper writes in %

# (method, labeled) -> ((dice, std), (jaccard, std), (hd95, std), (asd, std)), source
_TABLE = {
    ("supervised", 4): (((43.32, 8.62), (31.43, 6.90), (40.19, 1.11), (12.13, 0.57)), "Table 1"),
    ("supervised", 8): (((79.87, 1.23), (67.60, 1.88), (26.65, 6.36), (7.94, 2.22)), "Table 1"),
    ("supervised", 16): (((85.94, 0.48), (75.99, 0.57), (16.70, 1.82), (4.80, 0.62)), "Table 1"),
    ("supervised", 80): (((90.98, 0.67), (83.61, 1.06), (8.58, 2.34), (2.10, 0.59)), "Table 1"),
    ("mcnet", 4): (((80.92, 3.88), (68.90, 5.09), (17.25, 6.08), (2.76, 0.49)), "Table 1"),
    ("mcnet", 8): (((86.87, 1.74), (78.49, 1.06), (11.17, 1.40), (2.18, 0.14)), "Table 1"),
    ("mcnet", 16): (((90.43, 0.52), (82.69, 0.75), (6.52, 0.66), (1.66, 0.14)), "Table 1"),
    ("mcnet+occ", 4): (((83.12, 2.12), (71.73, 3.04), (16.94, 7.25), (4.51, 2.16)), "Table 2"),
    ("mcnet+occ", 8): (((88.50, 3.25), (79.53, 0.51), (9.89, 0.83), (2.35, 0.21)), "Table 2"),
    ("mcnet+occ", 16): (((90.27, 0.22), (82.42, 0.39), (6.96, 1.03), (1.91, 0.24)), "Table 2"),
    ("mcnet+cma", 4): (((86.35, 0.26), (76.16, 0.40), (12.36, 0.20), (2.94, 0.21)), "Table 2"),
    ("mcnet+cma", 8): (((88.84, 0.55), (80.05, 0.85), (8.50, 0.66), (1.97, 0.02)), "Table 2"),
    ("mcnet+cma", 16): (((90.25, 0.28), (82.34, 0.43), (6.95, 0.09), (1.79, 0.18)), "Table 2"),
    ("caml", 4): (((87.34, 0.05), (77.65, 0.08), (9.76, 0.92), (2.49, 0.22)), "Table 1"),
    ("caml", 8): (((89.62, 0.20), (81.28, 0.32), (8.76, 1.39), (2.02, 0.17)), "Table 1"),
    ("caml", 16): (((90.78, 0.11), (83.19, 0.18), (6.11, 0.39), (1.68, 0.15)), "Table 1"),
}


def paper_numbers(method, labeled):
    """The paper's row for ``method`` trained with ``labeled`` labeled cases, or None if it has none.

    Returns ``{"dice": .., "dice_std": .., "jaccard": .., ..., "source": "Table 1"}``.
    """
    entry = _TABLE.get((method, int(labeled)))
    if entry is None:
        return None
    values, source = entry
    row = {"source": source}
    for name, (mean, std) in zip(METRICS, values):
        row[name] = mean
        row[f"{name}_std"] = std
    return row
