"""The report side: leaderboards, benchmark tables, statistics, rendering and plots, made from
stored records alone. Nothing here imports torch (a test checks), so reading results is fast
and works on a machine without it."""
