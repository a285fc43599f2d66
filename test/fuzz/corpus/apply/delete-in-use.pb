

hosp