
Å
"expires_in_ms":key":"operations": i"SA_SOFU_EXPh.h0.
h0."privaMe_key":"operations": i"SA_SOFXE_PTIRED":01:01