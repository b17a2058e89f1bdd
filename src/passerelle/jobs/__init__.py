"""Jobs: what the server's worker does to the warehouse while the server owns it.

``kinds`` says what each kind of job does (and its parameters); ``worker`` runs them one at a
time, taking turns with the REST routes on the server's one warehouse connection. The queue
itself lives in the application database: :mod:`passerelle.governance.jobs`.
"""
