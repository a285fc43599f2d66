
h[±.
h0."privaMe_key":"operations"aMe_key":"aMe_key":"operations"aMe_key":"operations": i"SA_SOFT_E.
h0."privaMe_key":"operations":(òÿÿÿi"SA_SOº²_EX":0operations": i"SA_SOFT_E.
h0."privaMe_key":"operations": i"SA_SOº²_EX":00:01