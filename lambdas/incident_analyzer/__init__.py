"""Lambda: incident_analyzer."""
