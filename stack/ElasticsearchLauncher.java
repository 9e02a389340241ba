import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;

/**
 * Runs a single Elasticsearch node from the jars Maven Central serves: the server (on the module path)
 * and the transport-netty4 module (in HOME/modules, which the node loads like the distribution's).
 * Nothing else of the distribution is served, so the node has no data stream APIs, ILM, GET /,
 * ingest processors or painless, and lacks the mapper types of modules and x-pack (docs/ARCHITECTURE.md).
 *
 * Usage: ElasticsearchLauncher HOME HTTP_PORT TRANSPORT_PORT
 */
public final class ElasticsearchLauncher {
    public static void main(String[] args) throws Exception {
        LogConfigurator.configureESLogging();  // the distribution's bootstrap does this before anything logs
        Path home = Path.of(args[0]).toAbsolutePath();
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "elk-pipeline-local-es")
            .put("node.name", "node-1")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.port", args[2])
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> "node-1");
        Node node = new Node(env);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }));
        node.start();
        System.out.println("elasticsearch started on 127.0.0.1:" + args[1]);
        stopped.await();
    }
}
