
Åh.
.
h."privaMeÅh.
.
h."privaMe_key":"operations": 