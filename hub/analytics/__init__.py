"""The analytical CRM: lifecycle history, stays, RFM classification, retention reports and exports."""
