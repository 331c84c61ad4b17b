-- The desk customers a connection created for itself (an Entra or Dynamics 365 connection's
-- customer, when no customer had its name), so that removing the connection removes such a
-- customer too when it holds nothing else. A customer the connection was attached to is not
-- listed: it was there before and stays.
CREATE TABLE connection_created_customers (
    connection_id BIGINT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    PRIMARY KEY (connection_id, customer_id)
);
