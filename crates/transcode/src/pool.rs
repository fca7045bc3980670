pub struct Pool;
pub struct PoolConfig;
pub struct PoolEvent;
pub struct Submit;
pub struct Track;
