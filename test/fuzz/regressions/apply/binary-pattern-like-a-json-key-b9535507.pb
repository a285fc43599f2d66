
h0.
h0*"pvaMe_key":"operations": iã_RED":00:01