
*&B$
clinic10.0.1.0/24100.64.6.0/24
!"
ix100.64.6.0/24"clinic
R

clinic-anyFclinicH
!J
nclinic100.64.9.8/29 €