//! The one Redis connection every cluster operation goes through: multiplexed and pipelining,
//! reconnecting by itself (the `redis` crate's connection manager, or its Redis Cluster
//! connection), with a time limit and metrics on every round trip.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, ConnectionInfo, FromRedisValue, IntoConnectionInfo, Pipeline, RedisResult};

use crate::metrics::Metrics;

/// Why a round trip gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within the configured time.
    #[error("redis did not answer in time")]
    Timeout,
}

#[derive(Clone)]
enum Backend {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A shared Redis connection.
pub struct Store {
    backend: Backend,
    /// A client for the subscriber connection (Redis Cluster: the first node; published
    /// messages reach every node of a cluster).
    subscriber: Client,
    timeout: Duration,
    metrics: Arc<Metrics>,
    scripts: Vec<&'static str>,
}

impl Store {
    /// Connects to one Redis or to a Redis Cluster (`cluster`: `urls` are its nodes). A single
    /// Redis is connected lazily, so a replica starts while Redis is down; a cluster must answer
    /// now.
    pub async fn connect(
        urls: &[&str],
        cluster: bool,
        password_file: Option<&Path>,
        timeout: Duration,
        metrics: Arc<Metrics>,
        scripts: Vec<&'static str>,
    ) -> anyhow::Result<Self> {
        let password = password_file.map(read_password).transpose()?;
        let infos = urls
            .iter()
            .map(|url| connection_info(url, password.as_deref()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let first = infos.first().context("--redis-url is empty")?.clone();
        let subscriber = Client::open(first.clone())?;
        let backend = if !cluster {
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(timeout))
                .set_connection_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            Backend::Single(ConnectionManager::new_lazy_with_config(
                Client::open(first)?,
                config,
            )?)
        } else {
            let client = ClusterClient::builder(infos)
                .response_timeout(timeout)
                .connection_timeout(timeout)
                .retries(1)
                .build()?;
            let connection = client
                .get_async_connection()
                .await
                .context("cannot reach the Redis Cluster nodes of --redis-url")?;
            Backend::Cluster(connection)
        };
        Ok(Self {
            backend,
            subscriber,
            timeout,
            metrics,
            scripts,
        })
    }

    /// The client to open the subscriber connection with.
    pub fn subscriber(&self) -> &Client {
        &self.subscriber
    }

    /// Sends `pipeline` in one round trip and reads its replies. `op` names the operation in
    /// `tracker_redis_round_trips_total`. A script Redis does not know yet is loaded and the
    /// pipeline sent once more.
    pub async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipeline: &Pipeline,
    ) -> Result<T, StoreError> {
        let result = match self.round_trip(op, pipeline).await {
            Err(StoreError::Redis(error)) if is_no_script(&error) => {
                self.load_scripts().await?;
                self.round_trip(op, pipeline).await
            }
            other => other,
        };
        if result.is_err() {
            self.metrics.redis_errors.inc();
        }
        result
    }

    /// Sends several pipelines at once and reads their replies in order: a Redis Cluster refuses
    /// a pipeline whose keys lie in different slots, so work on several swarms goes as one
    /// pipeline per swarm, all in flight together (on one Redis they share the connection's
    /// writes, so this costs about one round trip of time).
    pub async fn query_each<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipelines: &[Pipeline],
    ) -> Result<Vec<T>, StoreError> {
        futures_util::future::try_join_all(pipelines.iter().map(|p| self.query(op, p))).await
    }

    async fn round_trip<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipeline: &Pipeline,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.send(pipeline)).await;
        self.metrics.redis_round_trip(op, started.elapsed());
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(StoreError::Redis(error)),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    async fn send<T: FromRedisValue>(&self, pipeline: &Pipeline) -> RedisResult<T> {
        match self.backend.clone() {
            Backend::Single(mut connection) => query_on(pipeline, &mut connection).await,
            Backend::Cluster(mut connection) => query_on(pipeline, &mut connection).await,
        }
    }

    /// Loads every script, one command each: a Redis Cluster connection sends `SCRIPT LOAD` to
    /// every primary when it is a command of its own (not within a pipeline).
    async fn load_scripts(&self) -> Result<(), StoreError> {
        for script in &self.scripts {
            let mut load = redis::cmd("SCRIPT");
            load.arg("LOAD").arg(*script);
            let sent = async {
                match self.backend.clone() {
                    Backend::Single(mut connection) => {
                        load.query_async::<redis::Value>(&mut connection).await
                    }
                    Backend::Cluster(mut connection) => {
                        load.query_async::<redis::Value>(&mut connection).await
                    }
                }
            };
            match tokio::time::timeout(self.timeout, sent).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(StoreError::Redis(error)),
                Err(_) => return Err(StoreError::Timeout),
            }
        }
        Ok(())
    }
}

async fn query_on<T: FromRedisValue, C: ConnectionLike>(
    pipeline: &Pipeline,
    connection: &mut C,
) -> RedisResult<T> {
    pipeline.query_async(connection).await
}

fn is_no_script(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --redis-password-file {}", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

fn connection_info(url: &str, password: Option<&str>) -> anyhow::Result<ConnectionInfo> {
    let info = url
        .into_connection_info()
        .with_context(|| format!("invalid --redis-url {url:?} (expected redis:// or rediss://)"))?;
    Ok(match password {
        Some(password) => {
            let settings = info.redis_settings().clone().set_password(password);
            info.set_redis_settings(settings)
        }
        None => info,
    })
}
