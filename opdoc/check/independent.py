"""placeholder"""
def comparisons(quick):
    return []
