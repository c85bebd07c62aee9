"""Summarizes an Autobahn TestSuite report (index.json) per section, as a markdown table, and
fails on any case that is not OK unless it is one of the explained ones below."""

import collections
import json
import sys

# Cases whose result is not OK, and why that is the intended behaviour.
EXPLAINED = {
    # Invalid UTF-8 inside one text frame that arrives in chops: the frame decoder
    # (tungstenite's) checks a frame's text once the whole frame is in (and each fragment of a
    # fragmented message as it completes: 6.4.1 and 6.4.2 are OK), so the connection fails when
    # the frame ends rather than at the first bad byte. Bounded by the message size limit.
    "NON-STRICT": {"6.4.3", "6.4.4"},
    # Informational by the suite's own definition (close codes and reasons it only records).
    "INFORMATIONAL": {"7.1.6", "7.13.1", "7.13.2"},
}

SECTIONS = {
    "1": "Framing", "2": "Pings/Pongs", "3": "Reserved bits", "4": "Opcodes",
    "5": "Fragmentation", "6": "UTF-8 handling", "7": "Close handling",
    "9": "Limits/performance",
}


def key(case):
    return [int(part) for part in case.split(".")]


def main(path):
    report = json.load(open(path))
    results = next(iter(report.values()))
    table = collections.OrderedDict()
    unexplained = []
    for case in sorted(results, key=key):
        result = results[case]
        behavior, close = result["behavior"], result["behaviorClose"]
        section = case.split(".")[0]
        counts = table.setdefault(section, collections.Counter())
        counts[behavior] += 1
        if behavior != "OK" and case not in EXPLAINED.get(behavior, ()):
            unexplained.append((case, behavior, close))
        if close not in ("OK", "INFORMATIONAL") and not (behavior == "NON-STRICT" and case in EXPLAINED["NON-STRICT"]):
            unexplained.append((case, "close " + close, close))
    kinds = ["OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED"]
    print("| Section | Cases | " + " | ".join(kinds) + " |")
    print("|---|---:|" + "---:|" * len(kinds))
    for section, counts in table.items():
        name = SECTIONS.get(section, "")
        cells = " | ".join(str(counts.get(k, 0)) for k in kinds)
        print("| %s %s | %d | %s |" % (section, name, sum(counts.values()), cells))
    total = collections.Counter()
    for counts in table.values():
        total.update(counts)
    print("| All | %d | %s |" % (sum(total.values()), " | ".join(str(total.get(k, 0)) for k in kinds)))
    if unexplained:
        print("\nunexplained results:")
        for case, behavior, close in unexplained:
            print("  %s: %s (close: %s)" % (case, behavior, close))
        sys.exit(1)
    print("\nevery case OK, or NON-STRICT/INFORMATIONAL for the reasons in bench/autobahn/summary.py")


if __name__ == "__main__":
    main(sys.argv[1])
